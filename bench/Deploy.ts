/**
 * The deploy-then-teardown measure the backend benchmarks share: a backend's `Deployment` layer built in a scope,
 * `configs` deployed (a scenario's wait: every agent ready), then the scope closed (every agent torn down), each
 * timed. A failed deploy still tears down what it made.
 */
import { type AgentConfig, Deployment } from "@tezt-cloud/core"
import { Context, Effect, Exit, Layer, Scope } from "effect"

/** Wall times of deploying `configs` with `layer` and of tearing them down, in milliseconds. */
export const deployAndTearDown = <E, R>(
  layer: Layer.Layer<Deployment.Deployment, E, R>,
  configs: ReadonlyArray<AgentConfig.AgentConfig>
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const start = performance.now()
    const context = yield* Layer.build(layer).pipe(Scope.provide(scope))
    const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs).pipe(
      Scope.provide(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
    const deploy = performance.now() - start
    if (agents.length !== configs.length) throw new Error(`deployed ${agents.length} of ${configs.length}`)
    const down = performance.now()
    yield* Scope.close(scope, Exit.void)
    return { deploy, teardown: performance.now() - down }
  })
