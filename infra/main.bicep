// tiermem on Azure: hot = Azure Managed Redis, warm = Cosmos DB for NoSQL, cold = Blob Storage, plus the
// `tiermem serve` HTTP service on Container Apps. Every data-plane call uses Entra ID through one
// user-assigned managed identity; no key, password or connection string is created for the app or
// returned by this deployment. Outputs are named exactly like the environment variables tiermem reads,
// so `az deployment group show ... --query properties.outputs` is a ready-made .env for local runs.
//
// Deploy: see infra/README.md (az deployment group create -g <rg> -p infra/main.dev.bicepparam).

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------
// General
// ---------------------------------------------------------------------------------------------------

@description('Azure region for every regional resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names (letters, digits, hyphens).')
@minLength(2)
@maxLength(12)
param namePrefix string = 'tiermem'

@description('Environment name used in resource names and tags, e.g. dev or prod.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Extra tags applied to every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------------
// Service (Container App)
// ---------------------------------------------------------------------------------------------------

@description('Container image of the tiermem service, e.g. myregistry.azurecr.io/tiermem:1.2.3.')
param containerImage string

@description('Registry the image is pulled from with the managed identity (grant it AcrPull); empty for a public image.')
param containerRegistryServer string = ''

@description('Audience the service accepts in Entra tokens (TIERMEM_AUTH_AUDIENCE): the app ID URI or client ID of the service app registration.')
param authAudience string

@description('Tenant whose tokens the service accepts (TIERMEM_AUTH_TENANT_ID). Defaults to the deployment tenant.')
param authTenantId string = tenant().tenantId

@description('Default hot-tier (Redis) TTL in seconds (TIERMEM_HOT_TTL).')
@minValue(1)
param hotTtlSeconds int = 300

@description('Name of a Key Vault secret holding a Redis password (TIERMEM_REDIS_PASSWORD_SECRET), only where Entra auth for Redis is impossible. Empty (the default) means Entra ID.')
param redisPasswordSecretName string = ''

@description('Expose the service outside the Container Apps environment. Callers still need an Entra token.')
param externalIngress bool = true

@description('vCPU per replica, as a string, e.g. 0.5.')
param containerCpu string = '0.5'

@description('Memory per replica, e.g. 1Gi (keep the Container Apps vCPU:memory ratio).')
param containerMemory string = '1Gi'

@description('Minimum number of replicas.')
@minValue(0)
param minReplicas int = 1

@description('Maximum number of replicas.')
@minValue(1)
param maxReplicas int = 5

@description('Concurrent HTTP requests per replica before the scaler adds a replica.')
@minValue(1)
param concurrentRequestsPerReplica int = 50

@description('Deploy a scheduled Container Apps job that runs `tiermem sweep` (deletes expired cold-tier blobs).')
param enableSweepJob bool = true

@description('Cron expression (UTC) of the sweep job.')
param sweepSchedule string = '30 3 * * *'

@description('Deploy a daily Container Apps job that runs `tiermem maintain` (retention, orphaned versions, quota reconcile).')
param enableMaintainJob bool = true

@description('Cron expression (UTC) of the maintain job.')
param maintainSchedule string = '0 3 * * *'

@description('Move values not written for this many days from warm to cold (0: never). TIERMEM_ARCHIVE_AFTER_DAYS.')
@minValue(0)
param archiveAfterDays int = 0

@description('Delete values not written for this many days (0: never). TIERMEM_EXPIRE_AFTER_DAYS.')
@minValue(0)
param expireAfterDays int = 0

// ---------------------------------------------------------------------------------------------------
// Hot tier (Azure Managed Redis)
// ---------------------------------------------------------------------------------------------------

@description('Azure Managed Redis SKU, e.g. Balanced_B0 for dev, Balanced_B5 or MemoryOptimized_M10 for prod.')
param redisSkuName string = 'Balanced_B0'

@description('Replicate the Redis data set (needed for the availability SLA).')
param redisHighAvailability bool = true

@description('Redis clustering policy: OSSCluster (cluster-aware client, TIERMEM_REDIS_CLUSTER=true) or EnterpriseCluster (single endpoint).')
@allowed([
  'OSSCluster'
  'EnterpriseCluster'
])
param redisClusteringPolicy string = 'OSSCluster'

@description('Redis eviction policy when memory is full.')
@allowed([
  'AllKeysLFU'
  'AllKeysLRU'
  'AllKeysRandom'
  'VolatileLRU'
  'VolatileLFU'
  'VolatileTTL'
  'VolatileRandom'
  'NoEviction'
])
param redisEvictionPolicy string = 'AllKeysLRU'

// ---------------------------------------------------------------------------------------------------
// Warm tier (Cosmos DB for NoSQL)
// ---------------------------------------------------------------------------------------------------

@description('Cosmos DB database name (TIERMEM_COSMOS_DATABASE).')
param cosmosDatabaseName string = 'tiermem'

@description('Cosmos DB container name (TIERMEM_COSMOS_CONTAINER); partition key /pk, defaultTtl -1.')
param cosmosContainerName string = 'memory'

@description('Cosmos DB default consistency level. Strong gives the cross-process coherence bound of docs/adr/0006 (durable point reads must be linearizable); Session adds replica lag to it.')
@allowed([
  'Strong'
  'BoundedStaleness'
  'Session'
  'ConsistentPrefix'
  'Eventual'
])
param cosmosConsistencyLevel string = 'Strong'

@description('Cosmos DB capacity mode: Serverless (single region, pay per request) or Provisioned (autoscale, multi-region).')
@allowed([
  'Serverless'
  'Provisioned'
])
param cosmosCapacityMode string = 'Serverless'

@description('Autoscale maximum RU/s of the container when Provisioned.')
@minValue(1000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('Extra Cosmos DB regions in failover priority order (Provisioned only), e.g. [\'northeurope\'].')
param cosmosFailoverLocations array = []

@description('Allow writes in every Cosmos DB region (Provisioned with failover locations only).')
param cosmosEnableMultipleWriteLocations bool = false

@description('Cosmos DB continuous backup tier (point-in-time restore window).')
@allowed([
  'Continuous7Days'
  'Continuous30Days'
])
param cosmosBackupTier string = 'Continuous7Days'

@description('Zone-redundant Cosmos DB write region (region must support availability zones).')
param cosmosZoneRedundant bool = false

// ---------------------------------------------------------------------------------------------------
// Cold tier (Blob Storage)
// ---------------------------------------------------------------------------------------------------

@description('Storage replication SKU. Geo-zone-redundant by default because the cold tier can hold the only copy of archived values; dev may choose Standard_LRS.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GZRS'

@description('Blob container of the cold tier (TIERMEM_BLOB_CONTAINER).')
param blobContainerName string = 'tiermem'

@description('Days after the last write before a cold-tier blob moves to the Cool access tier.')
@minValue(1)
param blobCoolAfterDays int = 30

@description('Days after the last write before a cold-tier blob moves to the Cold access tier.')
@minValue(1)
param blobColdAfterDays int = 90

@description('Days after the last write before a cold-tier blob is deleted by the lifecycle rule.')
@minValue(1)
param blobDeleteAfterDays int = 365

@description('Days deleted blobs and containers remain recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param blobSoftDeleteRetentionDays int = 14

@description('Days previous blob versions are kept.')
@minValue(1)
param blobVersionRetentionDays int = 30

@description('Enable blob point-in-time restore (adds change feed).')
param blobPointInTimeRestore bool = true

@description('Point-in-time restore window in days (less than blobSoftDeleteRetentionDays).')
@minValue(1)
param blobPointInTimeRestoreDays int = 7

// ---------------------------------------------------------------------------------------------------
// Key Vault, monitoring, network
// ---------------------------------------------------------------------------------------------------

@description('Days a deleted Key Vault or secret stays recoverable (7-90).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionDays int = 90

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Log Analytics daily ingestion cap in GB (-1 for none).')
param logDailyQuotaGb int = -1

@description('Require Entra-authenticated ingestion in Application Insights: the service exports with its managed identity (Monitoring Metrics Publisher on the component, TIERMEM_SERVICE_MONITOR_ENTRA=true), so the connection string alone cannot ingest. Turn off only for exporters that cannot use Entra ID.')
param appInsightsDisableLocalAuth bool = true

@description('E-mail address for alert notifications; empty for none.')
param alertEmail string = ''

@description('Alert when Redis used memory exceeds this percentage.')
@minValue(1)
@maxValue(100)
param alertRedisUsedMemoryPercent int = 85

@description('Alert when Cosmos DB returns more 429s than this in 15 minutes.')
@minValue(0)
param alertCosmos429Count int = 10

@description('Alert when the hot-tier hit rate (percent) over an hour falls below this value.')
@minValue(0)
@maxValue(100)
param alertHitRatePercent int = 50

@description('Alert when the p95 of tiermem.get / tiermem.mget spans exceeds this many milliseconds.')
@minValue(1)
param alertP95LatencyMs int = 250

@description('Create private endpoints (and private DNS zones, VNet) for Redis, Cosmos DB, Storage and Key Vault, and disable their public network access. Default: on for every environment not named dev.')
param enablePrivateEndpoints bool = environmentName != 'dev'

@description('Run the sweep job as its own user-assigned identity that may only read and delete blobs in the cold-tier container (grant it AcrPull too when the image is private).')
param sweepIdentityName string = ''


@description('Address space of the VNet created when enablePrivateEndpoints is true.')
param vnetAddressPrefix string = '10.60.0.0/16'

@description('Container Apps subnet (at least /27) inside vnetAddressPrefix.')
param appSubnetPrefix string = '10.60.0.0/23'

@description('Private endpoint subnet inside vnetAddressPrefix.')
param privateEndpointSubnetPrefix string = '10.60.2.0/24'

// ---------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------

var baseName = '${namePrefix}-${environmentName}'
var unique = uniqueString(resourceGroup().id, namePrefix, environmentName)
var allTags = union(tags, {
  application: 'tiermem'
  environment: environmentName
})

// ---------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: '${baseName}-identity'
  params: {
    name: 'id-${baseName}'
    location: location
    tags: allTags
  }
}

// The sweep job deletes expired cold-tier blobs and nothing else: its identity holds one role, on one
// container, instead of the service identity's access to Redis, Cosmos DB and Key Vault.
module sweepIdentity 'modules/identity.bicep' = if (enableSweepJob) {
  name: '${baseName}-sweep-identity'
  params: {
    name: empty(sweepIdentityName) ? 'id-${baseName}-sweep' : sweepIdentityName
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: '${baseName}-monitoring'
  params: {
    workspaceName: 'log-${baseName}'
    appInsightsName: 'appi-${baseName}'
    actionGroupName: 'ag-${baseName}'
    location: location
    tags: allTags
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
    appInsightsDisableLocalAuth: appInsightsDisableLocalAuth
    publisherPrincipalId: identity.outputs.principalId
    alertEmail: alertEmail
  }
}

module network 'modules/network.bicep' = if (enablePrivateEndpoints) {
  name: '${baseName}-network'
  params: {
    vnetName: 'vnet-${baseName}'
    location: location
    tags: allTags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
  }
}

module redis 'modules/redis.bicep' = {
  name: '${baseName}-redis'
  params: {
    name: 'redis-${baseName}-${take(unique, 6)}'
    location: location
    tags: allTags
    redisSkuName: redisSkuName
    highAvailability: redisHighAvailability
    clusteringPolicy: redisClusteringPolicy
    evictionPolicy: redisEvictionPolicy
    dataAccessPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateEndpoint: enablePrivateEndpoints
    privateEndpointSubnetId: enablePrivateEndpoints ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: enablePrivateEndpoints ? network!.outputs.redisZoneId : ''
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: '${baseName}-cosmos'
  params: {
    name: 'cosmos-${baseName}-${take(unique, 6)}'
    location: location
    tags: allTags
    databaseName: cosmosDatabaseName
    containerName: cosmosContainerName
    consistencyLevel: cosmosConsistencyLevel
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    failoverLocations: cosmosFailoverLocations
    enableMultipleWriteLocations: cosmosEnableMultipleWriteLocations
    backupTier: cosmosBackupTier
    zoneRedundant: cosmosZoneRedundant
    dataAccessPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateEndpoint: enablePrivateEndpoints
    privateEndpointSubnetId: enablePrivateEndpoints ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: enablePrivateEndpoints ? network!.outputs.cosmosZoneId : ''
  }
}

module storage 'modules/storage.bicep' = {
  name: '${baseName}-storage'
  params: {
    name: 'st${unique}'
    location: location
    tags: allTags
    storageSkuName: storageSkuName
    containerName: blobContainerName
    coolAfterDays: blobCoolAfterDays
    coldAfterDays: blobColdAfterDays
    deleteAfterDays: blobDeleteAfterDays
    softDeleteRetentionDays: blobSoftDeleteRetentionDays
    versionRetentionDays: blobVersionRetentionDays
    enablePointInTimeRestore: blobPointInTimeRestore
    pointInTimeRestoreDays: blobPointInTimeRestoreDays
    dataAccessPrincipalId: identity.outputs.principalId
    sweepPrincipalId: enableSweepJob ? sweepIdentity!.outputs.principalId : ''
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateEndpoint: enablePrivateEndpoints
    privateEndpointSubnetId: enablePrivateEndpoints ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: enablePrivateEndpoints ? network!.outputs.blobZoneId : ''
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: '${baseName}-keyvault'
  params: {
    name: 'kv${unique}'
    location: location
    tags: allTags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionDays
    secretsReaderPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateEndpoint: enablePrivateEndpoints
    privateEndpointSubnetId: enablePrivateEndpoints ? network!.outputs.privateEndpointSubnetId : ''
    privateDnsZoneId: enablePrivateEndpoints ? network!.outputs.vaultZoneId : ''
  }
}

var redisUrl = 'rediss://${redis.outputs.hostName}:${redis.outputs.port}'

module service 'modules/containerapp.bicep' = {
  name: '${baseName}-service'
  params: {
    environmentName: 'cae-${baseName}'
    appName: 'ca-${baseName}'
    location: location
    tags: allTags
    image: containerImage
    registryServer: containerRegistryServer
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    workspaceId: monitoring.outputs.workspaceId
    appInsightsName: monitoring.outputs.appInsightsName
    infrastructureSubnetId: enablePrivateEndpoints ? network!.outputs.appSubnetId : ''
    externalIngress: externalIngress
    cpu: containerCpu
    memory: containerMemory
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    concurrentRequestsPerReplica: concurrentRequestsPerReplica
    enableSweepJob: enableSweepJob
    sweepSchedule: sweepSchedule
    enableMaintainJob: enableMaintainJob
    maintainSchedule: maintainSchedule
    archiveAfterDays: archiveAfterDays
    expireAfterDays: expireAfterDays
    sweepIdentityId: enableSweepJob ? sweepIdentity!.outputs.id : ''
    sweepIdentityClientId: enableSweepJob ? sweepIdentity!.outputs.clientId : ''
    monitorEntra: appInsightsDisableLocalAuth
    redisUrl: redisUrl
    redisCluster: redis.outputs.clusterMode
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabase: cosmos.outputs.databaseName
    cosmosContainer: cosmos.outputs.containerName
    blobAccountUrl: storage.outputs.blobEndpoint
    blobContainer: storage.outputs.containerName
    keyVaultUrl: keyVault.outputs.uri
    redisPasswordSecretName: redisPasswordSecretName
    authTenantId: authTenantId
    authAudience: authAudience
    hotTtlSeconds: hotTtlSeconds
  }
}

module alerts 'modules/alerts.bicep' = {
  name: '${baseName}-alerts'
  params: {
    location: location
    tags: allTags
    namePrefix: baseName
    actionGroupId: monitoring.outputs.actionGroupId
    redisId: redis.outputs.id
    cosmosId: cosmos.outputs.id
    blobServiceId: storage.outputs.blobServiceId
    appInsightsId: monitoring.outputs.appInsightsId
    redisUsedMemoryPercentThreshold: alertRedisUsedMemoryPercent
    cosmos429Threshold: alertCosmos429Count
    hitRatePercentThreshold: alertHitRatePercent
    p95LatencyMsThreshold: alertP95LatencyMs
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs: named exactly like the settings tiermem reads. None of them is a credential.
// APPLICATIONINSIGHTS_CONNECTION_STRING is set on the Container App only (see modules/containerapp.bicep).
// ---------------------------------------------------------------------------------------------------

@description('Redis URL (TLS): rediss://<host>:<port>.')
output TIERMEM_REDIS_URL string = redisUrl

// Parenthesised so pycep-parser (used by tests/infra) binds the accessor before the ternary.
@description('true when the Redis database uses the OSS cluster policy (cluster-aware client).')
output TIERMEM_REDIS_CLUSTER string = (redis.outputs.clusterMode) ? 'true' : 'false'

@description('Cosmos DB document endpoint.')
output TIERMEM_COSMOS_ENDPOINT string = cosmos.outputs.endpoint

@description('Cosmos DB database name.')
output TIERMEM_COSMOS_DATABASE string = cosmos.outputs.databaseName

@description('Cosmos DB container name.')
output TIERMEM_COSMOS_CONTAINER string = cosmos.outputs.containerName

@description('Blob service endpoint of the storage account.')
output TIERMEM_BLOB_ACCOUNT_URL string = storage.outputs.blobEndpoint

@description('Blob container of the cold tier.')
output TIERMEM_BLOB_CONTAINER string = storage.outputs.containerName

@description('Client ID of the user-assigned managed identity every data-plane role is granted to.')
output AZURE_CLIENT_ID string = identity.outputs.clientId

@description('Key Vault URI.')
output TIERMEM_KEY_VAULT_URL string = keyVault.outputs.uri

@description('Name (not value) of the Key Vault secret with a Redis password; empty when Redis uses Entra ID.')
output TIERMEM_REDIS_PASSWORD_SECRET string = redisPasswordSecretName

@description('Auth mode of the deployed service.')
output TIERMEM_AUTH_MODE string = 'entra'

@description('Tenant whose tokens the service accepts.')
output TIERMEM_AUTH_TENANT_ID string = authTenantId

@description('Audience the service accepts.')
output TIERMEM_AUTH_AUDIENCE string = authAudience

@description('Default hot-tier TTL in seconds.')
output TIERMEM_HOT_TTL string = string(hotTtlSeconds)
