import { redirect } from "next/navigation";
import { authEnabled, signupAllowed } from "@/app/server/auth";
import { currentUser, safeNext } from "@/app/server/current-user";
import { db } from "@/app/server/db";
import { LoginForm } from "./LoginForm";
import "../account.css";

export const dynamic = "force-dynamic";

export default async function LoginPage({ searchParams }: { searchParams: Promise<{ next?: string | string[] }> }) {
  const { next } = await searchParams;
  const target = safeNext(Array.isArray(next) ? next[0] : next);
  if (!authEnabled()) redirect(target);
  if (await currentUser()) redirect(target);
  const [canSignUp, users] = await Promise.all([signupAllowed(), db().user.count()]);
  return <LoginForm next={target} canSignUp={canSignUp} firstAccount={users === 0} />;
}
