// Development: smallest SKUs, serverless Cosmos DB, public endpoints (Entra ID still required for every
// data-plane call), locally redundant storage, one replica.
using 'main.bicep'

param environmentName = 'dev'
param namePrefix = 'tiermem'

// Replace with the image your pipeline pushed and the service's app registration.
param containerImage = 'ghcr.io/example/tiermem:dev'
param authAudience = 'api://tiermem-dev'

param hotTtlSeconds = 300

param redisSkuName = 'Balanced_B0'
param redisHighAvailability = false
param redisClusteringPolicy = 'OSSCluster'

param cosmosCapacityMode = 'Serverless'
param cosmosConsistencyLevel = 'Session'
param cosmosBackupTier = 'Continuous7Days'

param storageSkuName = 'Standard_LRS'
param blobCoolAfterDays = 7
param blobColdAfterDays = 30
param blobDeleteAfterDays = 90
param blobSoftDeleteRetentionDays = 7
param blobPointInTimeRestore = false
param blobPointInTimeRestoreDays = 6

param keyVaultSoftDeleteRetentionDays = 7
param logRetentionDays = 30
param logDailyQuotaGb = 5

param minReplicas = 0
param maxReplicas = 2

param enablePrivateEndpoints = false
