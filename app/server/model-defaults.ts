import { readDefaults, writeDefaults } from "@/models/defaults";
import { authEnabled } from "./auth";
import { db } from "./db";

type Defaults = Record<string, string>;

function parse(text: string | undefined): Defaults {
  try {
    const v = JSON.parse(text ?? "{}") as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === "string")) : {};
  } catch {
    return {};
  }
}

/** A user's own default models (none for the single user, whose defaults are the server's). */
export async function ownDefaults(userId: string | null): Promise<Defaults> {
  if (!authEnabled() || !userId) return {};
  return parse((await db().user.findUnique({ where: { id: userId }, select: { modelDefaults: true } }))?.modelDefaults);
}

/** The default model per node type for this user: their own where they set one, else the server's (set by an admin). */
export async function effectiveDefaults(userId: string | null): Promise<{ defaults: Defaults; own: string[] }> {
  const own = await ownDefaults(userId);
  return { defaults: { ...readDefaults(), ...own }, own: Object.keys(own) };
}

/**
 * Sets (or with null clears) a default model for new nodes of a type: the server's (<models dir>/defaults.json,
 * for everybody: admins) or only the user's own (stored with their account).
 */
export async function setDefault(scope: "server" | "own", userId: string, nodeType: string, ref: string | null): Promise<void> {
  if (scope === "server") {
    const d = readDefaults();
    if (ref === null) delete d[nodeType];
    else d[nodeType] = ref;
    writeDefaults(d);
    return;
  }
  const d = await ownDefaults(userId);
  if (ref === null) delete d[nodeType];
  else d[nodeType] = ref;
  await db().user.update({ where: { id: userId }, data: { modelDefaults: JSON.stringify(d) } });
}

/** A deleted model is nobody's default any more (the server's or a user's). */
export async function forgetDefaultsFor(ref: string): Promise<void> {
  const d = readDefaults();
  for (const [t, r] of Object.entries(d)) if (r === ref) delete d[t];
  writeDefaults(d);
  const users = await db().user.findMany({ where: { modelDefaults: { contains: JSON.stringify(ref) } }, select: { id: true, modelDefaults: true } });
  for (const u of users) {
    const own = parse(u.modelDefaults);
    for (const [t, r] of Object.entries(own)) if (r === ref) delete own[t];
    await db().user.update({ where: { id: u.id }, data: { modelDefaults: JSON.stringify(own) } });
  }
}
