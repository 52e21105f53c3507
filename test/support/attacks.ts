/** Pieces of attack scripts that several suites aim at the same target. */

/** Shell lines trying every route to a host file: directly, through /proc/self/root and /proc/1/root, and its directory's listing. */
export function hostFileRoutes(file: string): string {
  return `cat '${file}' 2>&1
cat /proc/self/root'${file}' 2>&1
cat /proc/1/root'${file}' 2>&1
ls -la "$(dirname '${file}')" 2>&1`;
}
