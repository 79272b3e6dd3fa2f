/**
 * Failures of the ssh transport, each with a `reason` saying what happened. Backends translate them into core's
 * `CloudError` at their boundary.
 */
import { Schema } from "effect"

/** The server refused our key. */
export class AuthFailed extends Schema.TaggedError<AuthFailed>()("AuthFailed", { message: Schema.String }) {}

/** No connection could be made (refused, timed out, DNS). */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", { message: Schema.String }) {}

/** The host failed repeatedly: the circuit breaker is open and calls fail fast until it cools down. */
export class HostDown extends Schema.TaggedError<HostDown>()("HostDown", {
  message: Schema.String,
  retryInMillis: Schema.Number
}) {}

/** The host presented a key different from the one recorded on first use. */
export class HostKeyMismatch extends Schema.TaggedError<HostKeyMismatch>()("HostKeyMismatch", {
  message: Schema.String
}) {}

/** The connection dropped while a command or transfer was in flight. */
export class Disconnected extends Schema.TaggedError<Disconnected>()("Disconnected", { message: Schema.String }) {}

/** A channel failed, or the executor could not start a command. */
export class ChannelFailed extends Schema.TaggedError<ChannelFailed>()("ChannelFailed", { message: Schema.String }) {}

/** The command cannot be sent as given (a NUL byte in an argument, a variable or the directory): nothing ran. */
export class CommandInvalid extends Schema.TaggedError<CommandInvalid>()("CommandInvalid", {
  message: Schema.String
}) {}

/**
 * The server refused to open a channel (sshd's `MaxSessions`, often for a moment after other channels closed):
 * nothing ran, so it is retried.
 */
export class ChannelRefused extends Schema.TaggedError<ChannelRefused>()("ChannelRefused", {
  message: Schema.String
}) {}

export const Reason = Schema.Union([
  AuthFailed,
  Unreachable,
  HostDown,
  HostKeyMismatch,
  Disconnected,
  ChannelFailed,
  CommandInvalid,
  ChannelRefused
])
export type Reason = typeof Reason.Type

export class SshError extends Schema.TaggedError<SshError>()("SshError", {
  /** `user@host:port` */
  host: Schema.String,
  reason: Reason
}) {
  override get message(): string {
    return `ssh ${this.host}: ${this.reason.message}`
  }
}
