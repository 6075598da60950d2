-- AlterTable: existing accounts get nameKey = the lower-cased name (an account that only differs in case
-- from an older one, possible before this index, keeps a key of its own: name#id); the oldest becomes the admin.
ALTER TABLE "User" ADD COLUMN     "modelDefaults" TEXT NOT NULL DEFAULT '{}',
ADD COLUMN     "nameKey" TEXT,
ADD COLUMN     "role" TEXT NOT NULL DEFAULT 'user';

UPDATE "User" u SET "nameKey" = CASE
  WHEN EXISTS (SELECT 1 FROM "User" o WHERE lower(o."name") = lower(u."name") AND (o."createdAt" < u."createdAt" OR (o."createdAt" = u."createdAt" AND o."id" < u."id")))
  THEN lower(u."name") || '#' || u."id" ELSE lower(u."name") END;
UPDATE "User" SET "role" = 'admin' WHERE "id" = (SELECT "id" FROM "User" ORDER BY "createdAt", "id" LIMIT 1);
ALTER TABLE "User" ALTER COLUMN "nameKey" SET NOT NULL;

-- CreateTable
CREATE TABLE "LoginThrottle" (
    "key" TEXT NOT NULL,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "windowStart" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "LoginThrottle_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE INDEX "LoginThrottle_windowStart_idx" ON "LoginThrottle"("windowStart");

-- CreateIndex
CREATE UNIQUE INDEX "User_nameKey_key" ON "User"("nameKey");
