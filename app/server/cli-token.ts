/**
 * `npm run cli -- token ...`: personal API tokens for scripts (docs/cli-and-api.md "HTTP API").
 *   token add <name> [--user NAME] [--days N]   print a new token (once; only its hash is stored)
 *   token list [--user NAME]                    the tokens and when they were last used
 *   token revoke <id | name> [--user NAME]      delete one
 * With accounts on, --user names the account; single-user installs own theirs as "local".
 */
import { authEnabled, LOCAL_USER } from "./auth";
import { numberOption, onePositional, parseCommand, UsageError, type CliCommand } from "./cli-args";
import { db } from "./db";
import { createToken, listTokens, MAX_TOKEN_DAYS, revokeToken, TokenError } from "./tokens";

const HELP = `  token add <name> [--user U] [--days N]   Create a personal API token for scripts (printed once; stored hashed).
  token list [--user U] | token revoke <id | name> [--user U]
                                            List a user's tokens; revoke one. --user: the account (accounts on).`;

async function ownerOf(user: string | undefined): Promise<string> {
  if (!authEnabled()) {
    if (user !== undefined) throw new UsageError("--user is for servers with accounts on (STUDIO_AUTH=on); single-user tokens belong to the local user");
    return LOCAL_USER;
  }
  if (!user) throw new UsageError("accounts are on: say whose token with --user <name>");
  const row = await db().user.findUnique({ where: { name: user }, select: { id: true } });
  if (!row) throw new UsageError(`there is no user "${user}"`);
  return row.id;
}

export const tokenCli: CliCommand = {
  name: "token",
  help: HELP,
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseCommand(`token ${sub ?? ""}`.trim(), rest, { user: { type: "string" }, days: { type: "string" } });
    const owner = await ownerOf(values.user);
    try {
      if (sub === "add") {
        const { token, info } = await createToken(owner, onePositional(positionals, "token name? token add <name>"), { days: numberOption(values.days, "--days", { min: 0, aboveMin: true, max: MAX_TOKEN_DAYS }) });
        console.log(token);
        console.error(`created token "${info.name}" (${info.prefix}…, id ${info.id}${info.expiresAt ? `, expires ${info.expiresAt}` : ""}): copy it now, it is not shown again`);
        return 0;
      }
      if (sub === "list") {
        if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const tokens = await listTokens(owner);
        for (const t of tokens) console.log(`${t.id}  ${t.prefix}…  ${t.name}  created ${t.createdAt}  last used ${t.lastUsedAt ?? "never"}${t.expiresAt ? `  expires ${t.expiresAt}` : ""}`);
        if (!tokens.length) console.log("no tokens");
        return 0;
      }
      if (sub === "revoke") {
        const which = onePositional(positionals, "token? token revoke <id | name>");
        if (!(await revokeToken(owner, which))) throw new UsageError(`there is no token "${which}"`);
        console.log(`revoked token ${which}`);
        return 0;
      }
    } catch (err) {
      if (err instanceof TokenError) throw new UsageError(err.message);
      throw err;
    }
    throw new UsageError(`unknown token command "${sub ?? ""}"; use token add <name>, token list or token revoke <id | name>`);
  },
};
