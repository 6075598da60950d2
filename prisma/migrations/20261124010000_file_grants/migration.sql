-- CreateTable
CREATE TABLE "FileGrant" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "fileId" TEXT NOT NULL,
    "userId" TEXT,
    "runId" TEXT,
    "versionId" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "FileGrant_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "FileGrant_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "WorkflowVersion" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "FileGrant_fileId_idx" ON "FileGrant"("fileId");

-- CreateIndex
CREATE INDEX "FileGrant_runId_idx" ON "FileGrant"("runId");

-- CreateIndex
CREATE INDEX "FileGrant_versionId_idx" ON "FileGrant"("versionId");

