-- CreateTable
CREATE TABLE "LoginThrottle" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "windowStart" DATETIME NOT NULL
);

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_User" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "nameKey" TEXT NOT NULL,
    "passwordHash" TEXT NOT NULL,
    "role" TEXT NOT NULL DEFAULT 'user',
    "modelDefaults" TEXT NOT NULL DEFAULT '{}',
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- Existing accounts: nameKey is the lower-cased name (an account that only differs in case from an older
-- one, possible before this index, keeps a key of its own: name#id); the oldest account becomes the admin.
INSERT INTO "new_User" ("createdAt", "id", "name", "nameKey", "passwordHash", "role")
SELECT u."createdAt", u."id", u."name",
  CASE WHEN EXISTS (SELECT 1 FROM "User" o WHERE lower(o."name") = lower(u."name") AND (o."createdAt" < u."createdAt" OR (o."createdAt" = u."createdAt" AND o."id" < u."id")))
       THEN lower(u."name") || '#' || u."id" ELSE lower(u."name") END,
  u."passwordHash",
  CASE WHEN u."id" = (SELECT "id" FROM "User" ORDER BY "createdAt", "id" LIMIT 1) THEN 'admin' ELSE 'user' END
FROM "User" u;
DROP TABLE "User";
ALTER TABLE "new_User" RENAME TO "User";
CREATE UNIQUE INDEX "User_name_key" ON "User"("name");
CREATE UNIQUE INDEX "User_nameKey_key" ON "User"("nameKey");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateIndex
CREATE INDEX "LoginThrottle_windowStart_idx" ON "LoginThrottle"("windowStart");

