// Dependency-free, so the request proxy (proxy.ts) can use it.

/** A fresh nonce for one page response (128 random bits, base64). */
export function newNonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

/**
 * The Content-Security-Policy of a page. Scripts run only with this response's nonce (Next puts it on
 * its own bootstrap and chunk scripts, read from this header) or when such a script loads them
 * ('strict-dynamic'): no inline script, no injected markup's event handler, no eval in production.
 * Styles may be inline (React style attributes, Monaco's and ECharts' generated styles); workers (Monaco,
 * the entropy worker) come from this origin or blob:; only this origin may frame the app (clickjacking).
 */
export function contentSecurityPolicy(nonce: string, dev = process.env.NODE_ENV === "development"): string {
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob: data:",
    "font-src 'self' data:",
    `connect-src 'self'${dev ? " ws: wss:" : ""}`, // dev: the hot-reload socket
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
  ].join("; ");
}
