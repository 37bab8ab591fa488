// Hot tier: Azure Managed Redis (Microsoft.Cache/redisEnterprise) with one database.
// - Entra ID only: accessKeysAuthentication Disabled; the app identity gets the built-in 'default' access
//   policy through an access policy assignment, and redis-entraid refreshes its token in the background.
// - TLS only: clientProtocol Encrypted (port 10000, rediss://) and minimum TLS 1.2 on the cluster.
// - Clustering policy is a parameter: OSSCluster exposes the shard map (the client must run in cluster mode,
//   TIERMEM_REDIS_CLUSTER=true); EnterpriseCluster proxies everything through one endpoint.
// See infra/README.md for the Azure Cache for Redis (Microsoft.Cache/redis) alternative and its retirement.

@description('Name of the Azure Managed Redis cluster (1-60 characters, letters, digits and hyphens).')
@minLength(1)
@maxLength(60)
param name string

@description('Azure region for the cluster.')
param location string

@description('Tags applied to the cluster.')
param tags object = {}

@description('Azure Managed Redis SKU, e.g. Balanced_B0 (dev) or Balanced_B5 / MemoryOptimized_M10 (prod).')
param redisSkuName string = 'Balanced_B0'

@description('Replicate the data set across two nodes (required for the availability SLA; not offered on every small SKU).')
param highAvailability bool = true

@description('Database clustering policy: OSSCluster (cluster-aware clients, best throughput) or EnterpriseCluster (single endpoint, non-cluster clients).')
@allowed([
  'OSSCluster'
  'EnterpriseCluster'
])
param clusteringPolicy string = 'OSSCluster'

@description('Eviction policy when memory is full. tiermem sets a TTL on every hot key, and a cache must never refuse writes, so AllKeysLRU is the default.')
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
param evictionPolicy string = 'AllKeysLRU'

@description('Object (principal) ID of the managed identity that gets data access through the default access policy.')
param dataAccessPrincipalId string

@description('Resource ID of the Log Analytics workspace that receives diagnostics.')
param workspaceId string

@description('When true, public network access is disabled and a private endpoint is created.')
param enablePrivateEndpoint bool = false

@description('Subnet for the private endpoint (used only when enablePrivateEndpoint is true).')
param privateEndpointSubnetId string = ''

@description('Resource ID of the privatelink.redis.azure.net zone (used only when enablePrivateEndpoint is true).')
param privateDnsZoneId string = ''

resource cluster 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: redisSkuName
  }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: highAvailability ? 'Enabled' : 'Disabled'
    publicNetworkAccess: enablePrivateEndpoint ? 'Disabled' : 'Enabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: clusteringPolicy
    evictionPolicy: evictionPolicy
    accessKeysAuthentication: 'Disabled'
  }
}

// Assignment names allow only letters and digits (1-60), so derive one from the principal.
resource dataAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-07-01' = {
  parent: database
  name: take('tiermem${uniqueString(dataAccessPrincipalId)}', 60)
  properties: {
    accessPolicyName: 'default'
    user: {
      objectId: dataAccessPrincipalId
    }
  }
}

resource clusterDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: cluster
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// Connection events (new_conn / auth / close_conn) land in REDConnectionEvents: the place to see failed
// Entra authentications.
resource databaseDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: database
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

module privateEndpoint 'private-endpoint.bicep' = if (enablePrivateEndpoint) {
  name: '${name}-pe'
  params: {
    name: '${name}-pe'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    serviceId: cluster.id
    groupId: 'redisEnterprise'
    privateDnsZoneId: privateDnsZoneId
  }
}

@description('Resource ID of the cluster (scope of the memory and eviction alerts).')
output id string = cluster.id

@description('Host name clients connect to.')
output hostName string = cluster.properties.hostName

@description('TLS port of the database.')
output port int = database.properties.port

@description('True when the database uses the OSS cluster policy, i.e. the client must be cluster-aware.')
output clusterMode bool = clusteringPolicy == 'OSSCluster'
