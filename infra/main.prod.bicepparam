// Production: private endpoints only, provisioned Cosmos DB with a failover region and 30-day
// point-in-time restore, geo-zone-redundant storage, highly available Redis, warm replicas.
using 'main.bicep'

param environmentName = 'prod'
param namePrefix = 'tiermem'

// Replace with the released image and the service's app registration.
param containerImage = 'ghcr.io/example/tiermem:1.0.0'
param authAudience = 'api://tiermem'

param hotTtlSeconds = 900

param redisSkuName = 'Balanced_B5'
param redisHighAvailability = true
param redisClusteringPolicy = 'OSSCluster'
param redisEvictionPolicy = 'AllKeysLRU'

param cosmosCapacityMode = 'Provisioned'
param cosmosAutoscaleMaxThroughput = 10000
param cosmosConsistencyLevel = 'Strong'
param cosmosFailoverLocations = [
  'northeurope'
]
param cosmosBackupTier = 'Continuous30Days'
param cosmosZoneRedundant = true

param storageSkuName = 'Standard_GZRS'
param blobCoolAfterDays = 30
param blobColdAfterDays = 90
param blobDeleteAfterDays = 365
param blobSoftDeleteRetentionDays = 30
param blobVersionRetentionDays = 30
param blobPointInTimeRestore = true
param blobPointInTimeRestoreDays = 14

param keyVaultSoftDeleteRetentionDays = 90
param logRetentionDays = 90

param alertEmail = 'oncall@example.com'
param alertRedisUsedMemoryPercent = 80
param alertCosmos429Count = 50
param alertHitRatePercent = 60
param alertP95LatencyMs = 200

param containerCpu = '1.0'
param containerMemory = '2Gi'
param minReplicas = 2
param maxReplicas = 10

param enablePrivateEndpoints = true
