/** Public API of the re-identification key file (docs/keyfile-format.md). */

export {
  formatIdentity,
  generateIdentity,
  identityFilePermissionsTooOpen,
  parseIdentity,
  parseRecipient,
  readIdentityFile,
  readRecipientFile,
  writeIdentityFiles,
  IDENTITY_FILE_NAME,
  RECIPIENT_FILE_NAME,
  type KeyIdentity,
  type KeyRecipient,
} from "./identity.js";
export {
  FORMAT_VERSION as KEY_FILE_FORMAT_VERSION,
  inspectKeyFile,
  readKeyFile,
  writeKeyFile,
  type KeyCredential,
  type KeyFileMetadata,
  type KeyPassphrase,
  type WriteKeyFileOptions,
} from "./keyfile.js";
export { DEFAULT_PASSPHRASE_COST, type PassphraseCost } from "./seal.js";
