/**
 * `npm run cli -- user ...`: accounts for a server with login on (the admin's way in when sign-up is closed).
 *   user add <name> [--admin] [--password-stdin]   create an account (asks for the password twice, or reads one line
 *                                        from stdin); --admin makes it an admin (the first account always is one)
 *   user list                            list accounts
 *   user remove <name>                   delete an account and its sessions (its workflows stay, owned by its id)
 *   user adopt-local <name>              give the single-user install's workflows and runs (owner "local") to an account
 */
import { createInterface } from "node:readline";
import { AccountError, createUser, LOCAL_USER, MAX_PASSWORD } from "./auth";
import { onePositional, parseCommand, UsageError, type CliCommand } from "./cli-args";
import { db } from "./db";

const USER_HELP = `  user add <name> [--admin] [--password-stdin]
                                            Create an account (for STUDIO_AUTH=on servers); the password is asked
                                            twice, or read from stdin with --password-stdin. --admin: the account
                                            may import, delete and set the server's default models (the first
                                            account is always an admin).
  user list | user remove <name>            List accounts; delete one (and its sessions).
  user adopt-local <name>                   Give the workflows and runs made before login was on to this account.`;

/** Standard input, up to `limit` bytes; null when there is more (the rest is not read: `< /dev/zero` never ends). */
async function readStdin(limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > limit) return null; // (leaving the loop ends the stream)
  }
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** Asks for a line on the terminal without echoing it. */
function askHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    const output = rl as unknown as { _writeToOutput: (s: string) => void };
    let asked = false;
    output._writeToOutput = (s: string) => {
      if (!asked) {
        process.stdout.write(s);
        asked = true;
      }
    };
    rl.question(question, (answer) => {
      rl.close();
      process.stdout.write("\n");
      resolve(answer);
    });
  });
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseCommand(`user ${sub ?? ""}`.trim(), rest, { "password-stdin": { type: "boolean" }, admin: { type: "boolean" } });
  const name = () => onePositional(positionals, `user? user ${sub} <name>`);
  if (sub === "list") {
    const users = await db().user.findMany({ orderBy: { createdAt: "asc" }, select: { name: true, role: true, createdAt: true, _count: { select: { sessions: true } } } });
    for (const u of users) console.log(`${u.name}  ${u.role}  created ${u.createdAt.toISOString()}  ${u._count.sessions} session(s)`);
    if (!users.length) console.log("no accounts yet");
    return 0;
  }
  if (sub === "remove") {
    const user = await db().user.findUnique({ where: { name: name() }, select: { id: true } });
    if (!user) throw new UsageError(`there is no user "${name()}"`);
    // Its share links end with it: nobody could revoke them any more (its workflows stay, owned by its id).
    const [, links] = await db().$transaction([
      db().apiToken.deleteMany({ where: { ownerId: user.id } }),
      db().shareLink.updateMany({ where: { workflow: { ownerId: user.id }, revokedAt: null }, data: { revokedAt: new Date() } }),
      db().user.delete({ where: { id: user.id } }),
    ]);
    console.log(`removed user ${name()}${links.count ? ` (and revoked ${links.count} share link${links.count > 1 ? "s" : ""})` : ""}`);
    return 0;
  }
  if (sub === "adopt-local") {
    const user = await db().user.findUnique({ where: { name: name() } });
    if (!user) throw new UsageError(`there is no user "${name()}"`);
    const [workflows, runs] = await db().$transaction([
      db().workflow.updateMany({ where: { ownerId: LOCAL_USER }, data: { ownerId: user.id } }),
      db().run.updateMany({ where: { ownerId: LOCAL_USER }, data: { ownerId: user.id } }),
    ]);
    console.log(`${name()} now owns ${workflows.count} workflow(s) and ${runs.count} run(s) of the single-user install`);
    return 0;
  }
  if (sub !== "add") throw new UsageError(`unknown user command "${sub ?? ""}"; use user add <name> [--admin] [--password-stdin], user list, user remove <name> or user adopt-local <name>`);
  let password: string;
  if (values["password-stdin"]) {
    // a password of MAX_PASSWORD characters of up to 4 UTF-8 bytes each, and its line end
    const line = await readStdin(4 * MAX_PASSWORD + 2);
    if (line === null) throw new UsageError(`--password-stdin: the input is longer than a password may be (at most ${MAX_PASSWORD} characters)`);
    password = line;
    if (/[\r\n]/.test(password)) throw new UsageError("--password-stdin reads one line, and the input has more (the password would hold them all)");
  } else {
    if (!process.stdin.isTTY) throw new UsageError("no terminal to ask for the password: pipe it in with --password-stdin");
    password = await askHidden(`Password for ${name()}: `);
    if ((await askHidden("Again: ")) !== password) throw new UsageError("the two passwords differ");
  }
  try {
    await createUser(name(), password, { admin: values.admin === true });
  } catch (err) {
    if (err instanceof AccountError) throw new UsageError(err.message);
    throw err;
  }
  const role = (await db().user.findUnique({ where: { name: name() }, select: { role: true } }))?.role;
  console.log(`created user ${name()}${role === "admin" ? " (admin)" : ""}`);
  return 0;
}

export const userCli: CliCommand = { name: "user", help: USER_HELP, run };
