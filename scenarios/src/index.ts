/**
 * @tezt-cloud/scenarios: the scenario groups shipped with tezt-cloud.
 */
export * as Basic from "./Basic.ts"
