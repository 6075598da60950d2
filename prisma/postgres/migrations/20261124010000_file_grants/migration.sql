-- CreateTable
CREATE TABLE "FileGrant" (
    "id" TEXT NOT NULL,
    "fileId" TEXT NOT NULL,
    "userId" TEXT,
    "runId" TEXT,
    "versionId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "FileGrant_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "FileGrant_fileId_idx" ON "FileGrant"("fileId");

-- CreateIndex
CREATE INDEX "FileGrant_runId_idx" ON "FileGrant"("runId");

-- CreateIndex
CREATE INDEX "FileGrant_versionId_idx" ON "FileGrant"("versionId");

-- AddForeignKey
ALTER TABLE "FileGrant" ADD CONSTRAINT "FileGrant_runId_fkey" FOREIGN KEY ("runId") REFERENCES "Run"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FileGrant" ADD CONSTRAINT "FileGrant_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "WorkflowVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;

