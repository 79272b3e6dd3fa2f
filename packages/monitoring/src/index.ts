/**
 * @tezt-cloud/monitoring: the run's monitoring parts (pushed metrics, Prometheus, Grafana, netdata, process
 * exporter, Alertmanager and the alerts, the notifier) and the stack that starts them per the defaults cascade.
 */
export * as Alertmanager from "./Alertmanager.ts"
export * as Alerts from "./Alerts.ts"
export * as AuthProxy from "./AuthProxy.ts"
export * as Endpoints from "./Endpoints.ts"
export * as Grafana from "./Grafana.ts"
export * as Binaries from "./internal/binaries.ts"
export * as Metrics from "./Metrics.ts"
export * as Netdata from "./Netdata.ts"
export * as Notifier from "./Notifier.ts"
export * as ProcessExporter from "./ProcessExporter.ts"
export * as Prometheus from "./Prometheus.ts"
export * as RunMonitor from "./RunMonitor.ts"
export * as VerdictSource from "./VerdictSource.ts"
