/**
 * @tezt-cloud/proxy: proxy mode (`--proxy`): the orchestrator runs on a machine of the deployment, supervised by
 * the proxy's server, controlled from the user's machine over ssh.
 */
export * as Bundle from "./Bundle.ts"
export * as Launch from "./Launch.ts"
export * as Proxy from "./Proxy.ts"
export * as ProxyClient from "./ProxyClient.ts"
export * as ProxyImage from "./ProxyImage.ts"
export * as ProxyProtocol from "./ProxyProtocol.ts"
export * as ProxyRecord from "./ProxyRecord.ts"
export * as ProxyRun from "./ProxyRun.ts"
export * as ProxyServer from "./ProxyServer.ts"
export * as Shipping from "./Shipping.ts"
