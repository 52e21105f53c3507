import { describeRange } from "../../identity/range.ts";
import { describeSyscallFilter, SYSCALL_RULES } from "../../seccomp/policy.ts";
import { degraded, enforced, off, type ControlVerdict } from "../report.ts";
import type { PrivilegeSpec } from "../spec.ts";
import { needsIsolation, type LayerContext, type LayerResult } from "./context.ts";

/** What a host uid of one's own keeps to the run: said alike in every verdict. */
const OWN_UID_KEEPS = "per-uid kernel quotas (inotify instances, keys, processes), signals and same-uid channels are this run's alone";
const SHARED_UID_EXPOSES = "per-uid kernel quotas (inotify instances, keys, processes), signals and same-uid channels (its processes' /proc/<pid>/environ and /proc/<pid>/root)";

/**
 * The host uid and gid the run drops to and the verdicts on them. A root supervisor gives
 * each run its own (ctx.identity, from the pool); the sandbox uid inside stays the policy's.
 */
function hostIdentity(ctx: LayerContext): { hostDrop: PrivilegeSpec["hostDrop"]; uid: ControlVerdict; identity: ControlVerdict } {
  const { policy, caps, host, identity } = ctx;
  const { uid, gid } = policy.privilege;
  const inside = `uid ${uid} gid ${gid} inside`;
  if (!caps.isolating) {
    const why = `no isolation: the script runs as the supervisor (host uid ${host.uid})`;
    return { hostDrop: null, uid: needsIsolation(why), identity: needsIsolation(`${why}, with no host identity of its own`) };
  }
  if (!(caps.privilege.hostUidDrop && host.isRoot)) {
    const own = host.uid === uid && host.gid === gid;
    return {
      hostDrop: null,
      uid: own
        ? enforced(`the supervisor already runs as uid ${uid} gid ${gid}`)
        : degraded(`the sandboxed process runs as host uid ${host.uid} (the supervisor's), not ${uid}`, `run the supervisor as root, or set privilege.uid/gid to ${host.uid}/${host.gid}`),
      identity: degraded(
        `${host.isRoot ? "this provider cannot drop to another host uid here" : "the supervisor is not root"}: every run runs as host uid ${host.uid}, sharing ${SHARED_UID_EXPOSES} with every other run and with the supervisor`,
        "run the supervisor as root: each run then gets its own host uid from the identity pool (config identity)",
      ),
    };
  }
  if (!identity) {
    return {
      hostDrop: { uid, gid },
      uid: enforced(`supervisor drops to host uid ${uid} gid ${gid} (no supplementary groups) before the sandbox starts`),
      identity: degraded(
        `no per-run host identity was allocated: the run drops to host uid ${uid}, sharing ${SHARED_UID_EXPOSES} with every run planned so and every host process of that uid`,
        "plan runs through Cordon, which gives each run its own host uid from the identity pool (config identity)",
      ),
    };
  }
  const range = `the pool ${describeRange(identity.range)}`;
  if (identity.representative) {
    return {
      hostDrop: { uid: identity.uid, gid: identity.gid },
      uid: enforced(`supervisor drops to the run's own host uid and gid (per-run, from ${range}; no supplementary groups) before the sandbox starts; ${inside}`),
      identity: enforced(`per-run host uid and gid from ${range}, one per concurrent run: ${OWN_UID_KEEPS}`),
    };
  }
  return {
    hostDrop: { uid: identity.uid, gid: identity.gid },
    uid: enforced(`supervisor drops to host uid ${identity.uid} gid ${identity.gid}, this run's own (no supplementary groups), before the sandbox starts; ${inside}`),
    identity: enforced(`per-run host uid ${identity.uid} gid ${identity.gid} from ${range}: ${OWN_UID_KEEPS}`),
  };
}

export function privilegeLayer(ctx: LayerContext): LayerResult<PrivilegeSpec> {
  const { policy, caps } = ctx;
  const { uid, gid, dropCapabilities, noNewPrivs } = policy.privilege;
  const pc = caps.privilege;
  const controls: Record<string, ControlVerdict> = {};

  const { hostDrop, uid: uidVerdict, identity } = hostIdentity(ctx);
  controls.uid = uidVerdict;
  controls.identity = identity;

  if (!dropCapabilities) controls.capabilities = off("policy privilege.dropCapabilities is false");
  else if (pc.capabilityDrop) controls.capabilities = enforced("all capabilities dropped (bounding, effective, ambient)");
  else controls.capabilities = needsIsolation("this provider cannot drop capabilities");

  if (!noNewPrivs) controls.noNewPrivs = off("policy privilege.noNewPrivs is false");
  else if (pc.noNewPrivs) controls.noNewPrivs = enforced("PR_SET_NO_NEW_PRIVS: setuid binaries cannot raise privileges");
  else controls.noNewPrivs = needsIsolation("this provider cannot set no_new_privs");

  const filter = syscallFilterVerdict(ctx);
  controls.seccomp = filter.verdict;
  const keyring = keyringVerdict(ctx);
  controls.keyring = keyring.verdict;

  return { controls, spec: { hostDrop, sandboxUid: uid, sandboxGid: gid, dropCapabilities, noNewPrivs, syscallFilter: filter.rules, freshKeyring: keyring.fresh } };
}

/**
 * The syscall filter, one deny-list for every isolating provider. Switched off by policy it
 * is degraded, not off: without it the kernel's rarest interfaces and the unnamespaced
 * ones (keyrings, AF_VSOCK) are open to the script, so `fail` refuses such a run.
 */
function syscallFilterVerdict({ policy, caps }: LayerContext): { verdict: ControlVerdict; rules: typeof SYSCALL_RULES | null } {
  const how = caps.privilege.syscallFilter;
  if (!caps.isolating) return { verdict: needsIsolation("no syscall filter: the script makes any syscall the supervisor could"), rules: null };
  if (!policy.privilege.seccomp) {
    const also = "whenOff" in how && how.whenOff ? `; ${how.whenOff}` : "";
    return { verdict: degraded(`the syscall filter is off (policy privilege.seccomp: false): keyrings, AF_VSOCK, io_uring, userfaultfd, perf events and the mount API are open to the script${also}`, "set policy privilege.seccomp to true (switch it off only to debug a script)"), rules: null };
  }
  if ("problem" in how) return { verdict: degraded(`no syscall filter: ${how.problem}`, "install libseccomp2 (Debian 12: apt-get install libseccomp2) and, for bwrap, a bubblewrap with --seccomp"), rules: null };
  return { verdict: enforced(`${describeSyscallFilter(SYSCALL_RULES)} (${how.mechanism})`), rules: SYSCALL_RULES };
}

/** A fresh anonymous session keyring per run: whatever the filter says, the supervisor's keys are out of reach. */
function keyringVerdict({ caps }: LayerContext): { verdict: ControlVerdict; fresh: boolean } {
  const how = caps.privilege.freshKeyring;
  if (!caps.isolating) return { verdict: needsIsolation("no isolation: the script shares the supervisor's keyrings"), fresh: false };
  if ("problem" in how) return { verdict: degraded(`the run inherits the supervisor's session keyring: ${how.problem}`, "run cordon on x86_64 Linux with keyrings (CONFIG_KEYS)"), fresh: false };
  return { verdict: enforced(`the run starts in a fresh anonymous session keyring (${how.mechanism}): nothing of the supervisor's session keyring, nor of an earlier run, is reachable`), fresh: true };
}
