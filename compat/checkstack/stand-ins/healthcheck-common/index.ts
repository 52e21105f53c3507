/**
 * STAND-IN for `@checkstack/healthcheck-common`, which is not on the npm registry. Written
 * here for cordon's checkstack compat tests only: the one value @checkstack/backend-api
 * 0.35.2's aggregated-field factories use (they register each state schema's chart metadata
 * in it). Not checkstack's code, never shipped; vendor/checkstack links it in.
 */
import { z } from "zod";
// Relative: this folder is reached through a link, and resolution starts from its real path.
import type { HealthResultMeta } from "../common/index.ts";

export const healthResultRegistry = z.registry<HealthResultMeta>();
