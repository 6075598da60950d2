-- AlterTable
ALTER TABLE "Run" ADD COLUMN "peakDeviceBytes" REAL;
ALTER TABLE "Run" ADD COLUMN "peakRssBytes" REAL;
ALTER TABLE "Run" ADD COLUMN "startRssBytes" REAL;

-- AlterTable
ALTER TABLE "NodeRun" ADD COLUMN "peakRssBytes" REAL;

