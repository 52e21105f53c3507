/** A check's state as the monitor shows it (its own module: the scheduler and the metrics both name it). */
export type Health = "healthy" | "degraded" | "unhealthy";
