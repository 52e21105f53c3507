export type { LayerContext, LayerResult } from "./context.ts";
export { filesystemLayer } from "./filesystem.ts";
export { networkLayer } from "./network.ts";
export { resourcesLayer } from "./resources.ts";
export { privilegeLayer } from "./privilege.ts";
export { envLayer } from "./env.ts";
