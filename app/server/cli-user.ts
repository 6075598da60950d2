/**
 * `npm run cli -- user ...`: accounts for a server with login on (the admin's way in when sign-up is closed).
 *   user add <name> [--admin] [--password-stdin]   create an account (asks for the password twice, or reads one line
 *                                        from stdin); --admin makes it an admin (the first account always is one)
 *   user list                            list accounts
 *   user remove <name>                   delete an account and its sessions (its workflows stay, owned by its id)
 *   user adopt-local <name>              give the single-user install's workflows and runs (owner "local") to an account
 */
import { createInterface } from "node:readline";
import { AccountError, createUser, LOCAL_USER } from "./auth";
import { db } from "./db";

export const USER_HELP = `  user add <name> [--admin] [--password-stdin]
                                            Create an account (for STUDIO_AUTH=on servers); the password is asked
                                            twice, or read from stdin with --password-stdin. --admin: the account
                                            may import, delete and set the server's default models (the first
                                            account is always an admin).
  user list | user remove <name>            List accounts; delete one (and its sessions).
  user adopt-local <name>                   Give the workflows and runs made before login was on to this account.`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
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

/** Runs a `user` subcommand; returns the exit status (2 for bad usage or input). */
export async function userCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const fail = (message: string) => {
    console.error(`error: ${message}`);
    return 2;
  };
  if (sub === undefined || sub === "--help" || sub === "help") {
    console.log(`Accounts (npm run cli -- user ...):\n${USER_HELP}`);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "list") {
    const users = await db().user.findMany({ orderBy: { createdAt: "asc" }, select: { name: true, role: true, createdAt: true, _count: { select: { sessions: true } } } });
    for (const u of users) console.log(`${u.name}  ${u.role}  created ${u.createdAt.toISOString()}  ${u._count.sessions} session(s)`);
    if (!users.length) console.log("no accounts yet");
    return 0;
  }
  if (sub === "remove") {
    const [name] = rest;
    if (!name) return fail("user remove <name>");
    const { count } = await db().user.deleteMany({ where: { name } });
    if (!count) return fail(`there is no user "${name}"`);
    console.log(`removed user ${name}`);
    return 0;
  }
  if (sub === "adopt-local") {
    const [name] = rest;
    if (!name) return fail("user adopt-local <name>");
    const user = await db().user.findUnique({ where: { name } });
    if (!user) return fail(`there is no user "${name}"`);
    const [workflows, runs] = await db().$transaction([
      db().workflow.updateMany({ where: { ownerId: LOCAL_USER }, data: { ownerId: user.id } }),
      db().run.updateMany({ where: { ownerId: LOCAL_USER }, data: { ownerId: user.id } }),
    ]);
    console.log(`${name} now owns ${workflows.count} workflow(s) and ${runs.count} run(s) of the single-user install`);
    return 0;
  }
  if (sub !== "add") return fail(`unknown user command "${sub ?? ""}"; use user add <name> [--admin] [--password-stdin], user list, user remove <name> or user adopt-local <name>`);
  const fromStdin = rest.includes("--password-stdin");
  const admin = rest.includes("--admin");
  const unknown = rest.find((a) => a.startsWith("--") && a !== "--password-stdin" && a !== "--admin");
  if (unknown) return fail(`unknown option ${unknown}`);
  const name = rest.find((a) => !a.startsWith("--"));
  if (!name) return fail("user add <name> [--admin] [--password-stdin]");
  let password: string;
  if (fromStdin) {
    password = await readStdin();
  } else {
    if (!process.stdin.isTTY) return fail("no terminal to ask for the password: pipe it in with --password-stdin");
    password = await askHidden(`Password for ${name}: `);
    if ((await askHidden("Again: ")) !== password) return fail("the two passwords differ");
  }
  try {
    await createUser(name, password, { admin });
  } catch (err) {
    if (err instanceof AccountError) return fail(err.message);
    throw err;
  }
  const role = (await db().user.findUnique({ where: { name }, select: { role: true } }))?.role;
  console.log(`created user ${name}${role === "admin" ? " (admin)" : ""}`);
  return 0;
}
