/** What `cordon readiness` says under its table: whether the configured provider will run, and if not, why. */
import type { PolicyCheck } from "../cordon.ts";
import { escapeControls } from "../escape.ts";
import { TEXT_WIDTH, wrapText } from "../text-layout.ts";

export function readinessVerdict(configured: string, policyFile: string | undefined, check: PolicyCheck, width = TEXT_WIDTH): string[] {
  const which = policyFile === undefined ? "the configured policy" : `the configured policy with ${policyFile}`;
  const wrap = (text: string, indent: string, hang: string) => wrapText(escapeControls(text), width, { indent, hang });
  if (check.ready) return wrap(`configured provider ${configured}: ready (${check.provider} runs ${which} under onUnavailable=fail)`, "", "  ");
  return [
    ...wrap(`configured provider ${configured}: NOT ready for ${which}: runs under onUnavailable=fail will be refused`, "", "  "),
    ...check.reasons.flatMap((r) => wrap(r, "  - ", "    ")),
  ];
}
