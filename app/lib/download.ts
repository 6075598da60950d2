/** Saves what `href` points to (a server file's address, a data: URL) as a file named `name`. */
export function downloadUrl(name: string, href: string): void {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.click();
}

/**
 * How long a blob's object URL outlives the click: the browser reads it after `click()` returns, so releasing
 * it at once can cancel the download (FileSaver.js waits 40 s too).
 */
export const OBJECT_URL_LIFETIME_MS = 40_000;

/** Saves bytes made in the page as a file named `name`, releasing their object URL afterwards. */
export function downloadBlob(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  try {
    downloadUrl(name, url);
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), OBJECT_URL_LIFETIME_MS);
  }
}
