/**
 * @tezt-cloud/monitoring: the run's monitoring parts (pushed metrics, Prometheus, Grafana, netdata, process
 * exporter) and the stack that starts them per the defaults cascade.
 */
export * as AuthProxy from "./AuthProxy.ts"
export * as Endpoints from "./Endpoints.ts"
export * as Grafana from "./Grafana.ts"
export * as Binaries from "./internal/binaries.ts"
export * as Metrics from "./Metrics.ts"
export * as Netdata from "./Netdata.ts"
export * as ProcessExporter from "./ProcessExporter.ts"
export * as Prometheus from "./Prometheus.ts"
export * as RunMonitor from "./RunMonitor.ts"
