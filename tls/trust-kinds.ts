/**
 * The kinds of trust store `trust` acts on. Apart from tls/trust-store.ts, whose code loads on the
 * first call of installTrust, uninstallTrust or trustStatus.
 */

/** The kinds of store. */
export const trustStoreKinds = ['nss', 'system'] as const
/** A kind of store: `nss` (Chromium on Linux, Firefox) or `system` (the OS store). */
export type TrustStoreKind = typeof trustStoreKinds[number]
