/**
 * @tezt-cloud/ssh: the ssh transport (one multiplexed connection per host), the ssh Runner, sandbox agents over
 * ssh (for every backend that reaches its agents that way) and the `--ssh-host` backend.
 */
export * as Executor from "./Executor.ts"
export * as SshAuth from "./SshAuth.ts"
export * as SshClient from "./SshClient.ts"
export * as SshCommand from "./SshCommand.ts"
export * as SshConfig from "./SshConfig.ts"
export * as SshError from "./SshError.ts"
export * as SshHost from "./SshHost.ts"
export * as SshKeys from "./SshKeys.ts"
export * as SshRunner from "./SshRunner.ts"
export * as SshSandbox from "./SshSandbox.ts"
export * as SshTunnel from "./SshTunnel.ts"
