-- AlterTable
ALTER TABLE "Run" ADD COLUMN     "peakDeviceBytes" DOUBLE PRECISION,
ADD COLUMN     "peakRssBytes" DOUBLE PRECISION,
ADD COLUMN     "startRssBytes" DOUBLE PRECISION;

-- AlterTable
ALTER TABLE "NodeRun" ADD COLUMN     "peakRssBytes" DOUBLE PRECISION;

