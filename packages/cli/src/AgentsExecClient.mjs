// @ts-check
/**
 * The fast `agents exec` client (`AgentsExecClient.cjs`) for the ES modules that import it by this name.
 */
export { parse, run, socketPath } from "./AgentsExecClient.cjs"
