/** deidkit's library API. */
export { anonymize, removeStagingFolders, type AnonymizeOptions, type AnonymizeResult, type RunEvent } from "./run/anonymize.js";
export type { RunReport, QuarantineEntry } from "./run/report.js";
export type { KeyPayload } from "./run/key-payload.js";
export { compileProfile, selectOptions, OPTION_NAMES, PRESETS, type OptionName } from "./profile/profile.js";
export { DeidError, UsageError, DicomParseError, LimitError, KeyFileError, isDeidError, type ErrorCode } from "./errors.js";
export { runCli } from "./cli/main.js";
export * from "./keyfile/index.js";
