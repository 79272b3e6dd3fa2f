/**
 * @tezt-cloud/localhost: agents as process sandboxes on this machine, the embedded default backend.
 */
export * as LocalExecutor from "./LocalExecutor.ts"
export * as Localhost from "./Localhost.ts"
