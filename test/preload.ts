// bunfig's [test] timeout is not honoured by Bun 1.4.5: set the default here instead.
// Sandboxed runs spawn real bwrap, and the hostile tests wait for wall limits.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
