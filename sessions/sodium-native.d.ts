/** The part of sodium-native (libsodium's binding, no types of its own) that sessions/seal.ts uses. */
declare module 'sodium-native' {
  interface Sodium {
    readonly crypto_secretbox_KEYBYTES: number
    readonly crypto_secretbox_NONCEBYTES: number
    readonly crypto_secretbox_MACBYTES: number
    crypto_secretbox_easy (ciphertext: Uint8Array, message: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
    crypto_secretbox_open_easy (message: Uint8Array, ciphertext: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean
    randombytes_buf (buffer: Uint8Array): void
  }
  const sodium: Sodium
  export = sodium
}
