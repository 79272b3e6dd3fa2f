/** The GCP backend: agents on Compute Engine VMs (or the GCE emulator's), reached over ssh. */
export * as CloudDns from "./CloudDns.ts"
export * as GceClient from "./GceClient.ts"
export * as GceResources from "./GceResources.ts"
export * as GcpAgents from "./GcpAgents.ts"
export * as GcpError from "./GcpError.ts"
export * as GcpJobs from "./GcpJobs.ts"
export * as GcpNamespace from "./GcpNamespace.ts"
export * as GcpTarget from "./GcpTarget.ts"
