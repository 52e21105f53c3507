/**
 * Imported first by the CLI's entry (bin/cordon.ts): zod validates without compiling a parser
 * per object schema (`new Function`, ~15 ms of a CLI start for the few parses one command
 * makes). The checks, their results and their messages are the same either way.
 */
import { config } from "zod";

config({ jitless: true });
