import { degraded, enforced, off, type ControlVerdict } from "../report.ts";
import type { NetworkSpec } from "../spec.ts";
import type { LayerContext, LayerResult } from "./context.ts";

const DENY_MECHANISM = "fresh network namespace with only loopback";
const FALLBACK = "ran with no network (deny) instead: never open egress unfiltered";

export function networkLayer(ctx: LayerContext): LayerResult<NetworkSpec> {
  const { policy, caps } = ctx;
  const { mode, blockMetadata } = policy.network;
  const fresh: NetworkSpec = { namespace: "fresh" };
  const noNamespace = (): LayerResult<NetworkSpec> => ({
    controls: { egress: degraded("this provider has no network namespace: the script has the host's network", "use an isolating provider (bwrap)") },
    spec: { namespace: "host" },
  });

  if (mode === "deny") {
    return caps.network.deny ? { controls: { egress: enforced(DENY_MECHANISM) }, spec: fresh } : noNamespace();
  }
  if (mode === "allowlist") {
    if (caps.network.allowlist) return { controls: { egress: enforced("filtered egress (allowlist)") }, spec: fresh };
    if (!caps.network.deny) return noNamespace();
    return {
      controls: { egress: degraded(`this provider cannot filter egress; ${FALLBACK}`, "use the rootless provider for allowlists") },
      spec: fresh,
    };
  }
  // unrestricted
  if (blockMetadata && !caps.network.metadataBlock) {
    if (!caps.network.deny) return noNamespace();
    const verdict: ControlVerdict = degraded(
      `unrestricted egress with blockMetadata needs a filter this provider lacks; ${FALLBACK}`,
      "use the rootless provider, or set network.blockMetadata: false",
    );
    return { controls: { egress: verdict }, spec: fresh };
  }
  return { controls: { egress: off("policy network.mode is unrestricted: the host's network is shared") }, spec: { namespace: "host" } };
}
