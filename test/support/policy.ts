/** Who runs the tests, and the policy every test starts from because of it. */
import { type PolicyOverride } from "../../src/api/index.ts";

export const IS_ROOT = process.getuid?.() === 0;

/**
 * The policy every test starts from. As root the shipped default policy is enforceable in full
 * (uid drop, scratch quota), so nothing is added. As non-root some controls degrade and the
 * default `fail` would refuse every run: degrade instead, and say so loudly.
 */
export const BASE_POLICY: PolicyOverride = IS_ROOT ? {} : { onUnavailable: "degrade" };
if (!IS_ROOT) console.warn("security tests: not running as root; runs use onUnavailable=degrade and root-only checks are skipped");
