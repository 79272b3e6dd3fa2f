/** Helpers of the emulator's tests: promises of the official client as Effects, and its Operations. */
import type { protos } from "@google-cloud/compute"
import { Effect } from "effect"

/** A promise of the client as an Effect (a rejection is a defect: the test fails with it). */
export const call = <A>(f: () => Promise<A>) => Effect.promise(f)

/** The Compute Operation an insert, delete or setLabels answered with. */
export const operation = (lro: { readonly latestResponse: unknown }) =>
  lro.latestResponse as protos.google.cloud.compute.v1.IOperation
