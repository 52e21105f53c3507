/**
 * Imported first by the CLI's entry (bin/cordon.ts): zod validates without compiling a parser
 * per object schema (`new Function`): for the few parses one command makes, compiling costs
 * more than it saves. The checks, their results and their messages are the same either way.
 */
import { config } from "zod";

config({ jitless: true });
