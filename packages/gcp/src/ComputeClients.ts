/**
 * The Compute Engine clients the backend uses (`GceClient`), each imported from its own module of
 * `@google-cloud/compute`: the package's index loads every client of three API versions and the generated classes
 * of every message (about a CPU-second), which the backend never uses.
 */
export { AddressesClient } from "@google-cloud/compute/build/src/v1/addresses_client.js"
export { FirewallsClient } from "@google-cloud/compute/build/src/v1/firewalls_client.js"
export { GlobalOperationsClient } from "@google-cloud/compute/build/src/v1/global_operations_client.js"
export { InstancesClient } from "@google-cloud/compute/build/src/v1/instances_client.js"
export { RegionOperationsClient } from "@google-cloud/compute/build/src/v1/region_operations_client.js"
export { ZoneOperationsClient } from "@google-cloud/compute/build/src/v1/zone_operations_client.js"
