/**
 * @tezt-cloud/docker: the Docker engine transport (dockerode), agent images, the base image from Debian
 * packages, and the `--localhost` Docker runtime.
 */
export * as BaseImage from "./BaseImage.ts"
export * as ContainerNetwork from "./ContainerNetwork.ts"
export * as DockerAgents from "./DockerAgents.ts"
export * as DockerClient from "./DockerClient.ts"
export * as DockerError from "./DockerError.ts"
export * as DockerImage from "./DockerImage.ts"
export * as DockerRegistry from "./DockerRegistry.ts"
export * as SshDockerAgents from "./SshDockerAgents.ts"
