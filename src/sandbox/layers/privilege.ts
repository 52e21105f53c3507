import { describeSyscallFilter, SYSCALL_RULES } from "../../seccomp/policy.ts";
import { degraded, enforced, off, type ControlVerdict } from "../report.ts";
import type { PrivilegeSpec } from "../spec.ts";
import { needsIsolation, USE_ISOLATING_PROVIDER, type LayerContext, type LayerResult } from "./context.ts";

export function privilegeLayer(ctx: LayerContext): LayerResult<PrivilegeSpec> {
  const { policy, caps, host } = ctx;
  const { uid, gid, dropCapabilities, noNewPrivs } = policy.privilege;
  const pc = caps.privilege;
  const controls: Record<string, ControlVerdict> = {};
  let hostDrop: PrivilegeSpec["hostDrop"] = null;

  if (pc.hostUidDrop && host.isRoot) {
    hostDrop = { uid, gid };
    controls.uid = enforced(`supervisor drops to host uid ${uid} gid ${gid} (no supplementary groups) before the sandbox starts`);
  } else if (caps.isolating && host.uid === uid && host.gid === gid) {
    controls.uid = enforced(`the supervisor already runs as uid ${uid} gid ${gid}`);
  } else {
    controls.uid = degraded(
      caps.isolating
        ? `the sandboxed process runs as host uid ${host.uid} (the supervisor's), not ${uid}`
        : `no isolation: the script runs as the supervisor (host uid ${host.uid})`,
      caps.isolating ? `run the supervisor as root, or set privilege.uid/gid to ${host.uid}/${host.gid}` : USE_ISOLATING_PROVIDER,
    );
  }

  // The run's user namespace is owned by the host uid it drops to: every other process running
  // as that uid can read the run's /proc/<pid>/environ and /proc/<pid>/root. Looked up before
  // the run, not prevented: when none is seen the uid verdict says so, when some are it degrades.
  const users = host.sandboxUidUsers;
  if (hostDrop && users && users.uid === uid) {
    if (users.count === 0 && controls.uid.status === "enforced") {
      controls.uid = enforced(`${controls.uid.mechanism}; no host process outside cordon's runs ran as uid ${uid} when the run was planned`);
    } else if (users.count > 0) {
      const n = users.count;
      controls.uidShared = degraded(
        `${n} host process${n === 1 ? "" : "es"} outside cordon's runs run${n === 1 ? "s" : ""} as uid ${uid} (${users.processes.join(", ")}${n > users.processes.length ? ", …" : ""}): the run's user namespace is owned by that uid, so they can read its /proc/<pid>/environ (secret values included) and /proc/<pid>/root`,
        `give the sandbox a uid nothing else on the host uses: set policy.privilege.uid and privilege.gid to an unused number (no /etc/passwd entry, no process), or stop those processes`,
      );
    }
  }

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
