import {
  findExecutable,
  type Capabilities,
  type EgressSpec,
  type HostFacts,
  type Launch,
  type Provider,
  type ProviderProbe,
  type RenderContext,
  type Rendering,
  type SandboxSpec,
  type SetupStep,
  SYSTEM_PATH,
} from "../../src/api/plugin.ts";
import { bwrapCapabilities, probeBwrap, renderBwrap } from "../mechanism/bwrap/launch.ts";
import { readHostNets } from "../mechanism/egress/host-nets.ts";
import { renderRuleset, type RulesetInput } from "../mechanism/egress/ruleset.ts";
import { closeSync } from "node:fs";
import { loadRuleset, openOwnerUserns, startSlirp, waitForIpv6Route, type NetnsAccess, type Slirp, type Tools } from "./helpers.ts";

const NETWORK = { deny: true, allowlist: true, unrestricted: true, metadataBlock: true };

export interface RootlessOptions {
  bwrap?: string;
  /** Paths of the helper binaries (default: found on the system PATH). */
  slirp4netns?: string;
  nft?: string;
  nsenter?: string;
}

/**
 * slirp4netns's --enable-sandbox, as non-root, re-enters the user namespace of its target
 * PID and then calls setegid(0); started with --netns-type=path (which the nested user
 * namespace of bwrap's child requires) it has no target PID and fails ("setegid(0)",
 * measured with slirp4netns 1.2.0). An unconfined slirp4netns is refused, so a non-root
 * supervisor cannot run this provider today (it also needs /dev/net/tun, 0600 root on
 * some hosts).
 */
const NON_ROOT =
  "the supervisor is not root: slirp4netns cannot confine itself (--enable-sandbox fails with setegid(0) when it joins the sandbox's network namespace by path), and an unconfined slirp4netns is refused; run the supervisor as root";

/**
 * bwrap + slirp4netns: a fresh network namespace whose only way out is a user-mode
 * TCP/IP stack, filtered by an nftables ruleset loaded before the script is released.
 */
export class RootlessProvider implements Provider {
  readonly name = "rootless";
  readonly description = "bubblewrap + slirp4netns: filtered egress (allowlist, metadata blocked) without a host network setup";
  readonly isolating = true;

  constructor(private readonly options: RootlessOptions = {}) {}

  probe(host: HostFacts): ProviderProbe {
    const bwrap = probeBwrap(this.options.bwrap);
    if (!bwrap.available) return bwrap;
    const names = ["slirp4netns", "nft", "nsenter"] as const;
    const found = names.map((t) => [t, findExecutable(this.options[t] ?? t, SYSTEM_PATH)] as const);
    const missing = found.filter(([, path]) => !path).map(([t]) => this.options[t] ?? t);
    const tools = Object.fromEntries(found.map(([t, path]) => [t, path ?? ""]));
    const reason = missing.length
      ? `${missing.join(", ")} not found (Debian: apt-get install slirp4netns nftables util-linux)`
      : !bwrap.features.blockFd
        ? "this bwrap has no --block-fd: rules could not be loaded before the script starts"
        : !host.isRoot
          ? NON_ROOT
          : null;
    const ip = findExecutable("ip", SYSTEM_PATH); // optional: waits for slirp's IPv6 route when present
    return { ...bwrap, available: reason === null, ...(reason ? { reason } : {}), tools: { ...bwrap.tools, ...tools, ...(ip ? { ip } : {}) } };
  }

  capabilities(probe: ProviderProbe, host: HostFacts): Capabilities {
    return bwrapCapabilities(probe, host, NETWORK);
  }

  render(spec: SandboxSpec, { probe, host }: RenderContext): Rendering {
    const tools = { slirp4netns: probe.tools?.slirp4netns ?? "slirp4netns", nft: probe.tools?.nft ?? "nft", nsenter: probe.tools?.nsenter ?? "nsenter", ip: probe.tools?.ip ?? null };
    const bwrap = renderBwrap(spec, probe, { block: spec.network.egress !== null });
    return { ...bwrap, launch: withEgress(bwrap.launch, spec, tools, host) };
  }
}

/**
 * The ruleset input of a run. blockMetadata also blocks the host: the slirp gateway and
 * every address of the host as it is now (read in this process, whose network namespace
 * slirp4netns inherits). A rule the policy wrote as an address or network is `literal`:
 * only such a rule can name a host address (plugins/mechanism/egress/ruleset.ts).
 */
function rulesetInput(egress: EgressSpec): RulesetInput {
  return {
    mode: egress.mode,
    rules: egress.rules,
    blockMetadata: egress.blockMetadata,
    blockGateway: egress.blockMetadata,
    hostNets: egress.blockMetadata ? readHostNets() : [],
  };
}

/**
 * Filtered egress as a setup step: plumbed while bwrap holds the command (rules loaded,
 * then slirp4netns started and checked), torn down after the run whatever happens.
 */
function withEgress(launch: Launch, spec: SandboxSpec, tools: Tools & { ip: string | null }, host: HostFacts): Launch {
  const egress = spec.network.egress;
  if (!egress) return launch;
  // Rendered now so a policy the ruleset refuses (e.g. a hostname pinned to a host
  // address) fails the plan; rendered again just before release with the host's
  // addresses as they are then (an address added meanwhile is blocked too).
  renderRuleset(rulesetInput(egress));
  let slirp: Slirp | null = null;
  // Only an allowlisted IPv6 destination waits for it: unrestricted runs start at once (IPv6 follows ~1-2 s later).
  const needsIpv6 = egress.rules.some((r) => r.family === 6);
  const step: SetupStep = {
    name: "egress",
    async beforeRelease(childPid) {
      const ns: NetnsAccess = { pid: childPid, ownerUserns: host.isRoot ? null : openOwnerUserns(childPid) };
      try {
        const ruleset = renderRuleset(rulesetInput(egress));
        await loadRuleset(tools, ns, ruleset); // rules first: there is no egress path without them
        slirp = await startSlirp(tools, ns);
        if (needsIpv6 && tools.ip) await waitForIpv6Route({ ...tools, ip: tools.ip }, ns);
      } finally {
        if (ns.ownerUserns !== null) closeSync(ns.ownerUserns);
      }
    },
    async cleanup() {
      await slirp?.stop();
    },
  };
  return { ...launch, steps: [...(launch.steps ?? []), step] };
}
