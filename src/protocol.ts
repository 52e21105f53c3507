import type { Layout } from "./sandbox/spec.ts";

/** Where the job dir, scratch and /tmp appear inside an isolating sandbox (the unsafe provider has its own). */
export const SANDBOX_LAYOUT: Readonly<Layout> = { jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" };
