/**
 * @tezt-cloud/core: the contracts and services every backend and scenario is written against.
 */
export * as Agent from "./Agent.ts"
export * as AgentConfig from "./AgentConfig.ts"
export * as Cloud from "./Cloud.ts"
export * as CloudConfig from "./CloudConfig.ts"
export * as CloudError from "./CloudError.ts"
export * as CopyPolicy from "./CopyPolicy.ts"
export * as Daemon from "./Daemon.ts"
export * as Deployment from "./Deployment.ts"
export * as Ledger from "./Ledger.ts"
export * as Orchestrator from "./Orchestrator.ts"
export * as RunEvents from "./RunEvents.ts"
export * as Runner from "./Runner.ts"
export * as RunServices from "./RunServices.ts"
export * as Scenario from "./Scenario.ts"
export * as Teardown from "./Teardown.ts"
export * as TestCloud from "./TestCloud.ts"
