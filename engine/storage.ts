import { createHash } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Storage } from "./node";

const BLOB_ID = /^[0-9a-f]{64}(\.[a-z0-9]{1,8})?$/;

/**
 * Content-addressed blobs on local disk: `<root>/<aa>/<sha256>.<ext>`. Ids are validated before they
 * become paths, so a crafted id can never reach outside the root.
 */
export class DiskStorage implements Storage {
  constructor(readonly root: string) {}

  pathOf(id: string): string {
    if (!BLOB_ID.test(id)) throw new Error(`"${id}" is not a valid file id`);
    return path.join(this.root, id.slice(0, 2), id);
  }

  async read(id: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`file ${id} is missing from the data directory`);
      throw err;
    }
  }

  async exists(id: string): Promise<boolean> {
    try {
      await stat(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  async write(bytes: Uint8Array, ext: string): Promise<string> {
    const cleanExt = ext.replace(/^\./, "").toLowerCase();
    if (cleanExt && !/^[a-z0-9]{1,8}$/.test(cleanExt)) throw new Error(`bad file extension "${ext}"`);
    const hash = createHash("sha256").update(bytes).digest("hex");
    const id = cleanExt ? `${hash}.${cleanExt}` : hash;
    const file = this.pathOf(id);
    if (await this.exists(id)) return id;
    await mkdir(path.dirname(file), { recursive: true });
    // Write then rename, so a crash never leaves a half-written blob under its final name.
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, file);
    return id;
  }
}
