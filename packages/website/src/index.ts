/**
 * @tezt-cloud/website: the run's web UI (summary, links, commands, charts, events) and its `/metrics`.
 */
export * as Page from "./Page.ts"
export * as Website from "./Website.ts"
