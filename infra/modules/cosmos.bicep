// Warm tier: Azure Cosmos DB for NoSQL.
// - Entra ID only: disableLocalAuth (no account keys, no connection strings) and the Cosmos DB Built-in
//   Data Contributor SQL role for the app identity, scoped to the tiermem database.
// - The container uses partition key /pk (pk = encoded logical key: 1-RU point reads, no hot 20 GB logical
//   partition) and defaultTtl -1: TTL is on, and only items that carry their own `ttl` expire.
// - Continuous backup (point-in-time restore) is the restore story; see runbooks/region-failover-and-restore.md.
// Data-plane RBAC cannot create databases or containers, so this template creates them and `tiermem init`
// only verifies them.

@description('Name of the Cosmos DB account (3-44 lowercase letters, digits and hyphens).')
@minLength(3)
@maxLength(44)
param name string

@description('Azure region of the account (the first, write region).')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Name of the SQL database.')
param databaseName string = 'tiermem'

@description('Name of the container that holds the warm tier items.')
param containerName string = 'memory'

@description('Default consistency level. Strong: another replica reads every acknowledged write (docs/adr/0006); Session is read-your-writes per client only.')
@allowed([
  'Strong'
  'BoundedStaleness'
  'Session'
  'ConsistentPrefix'
  'Eventual'
])
param consistencyLevel string = 'Strong'

@description('Serverless (pay per request, single region) or Provisioned (autoscale throughput, multi-region).')
@allowed([
  'Serverless'
  'Provisioned'
])
param capacityMode string = 'Serverless'

@description('Autoscale maximum RU/s of the container when capacityMode is Provisioned (1000 or more, multiple of 1000).')
@minValue(1000)
param autoscaleMaxThroughput int = 1000

@description('Extra read regions for a Provisioned account, in failover priority order (ignored when Serverless).')
param failoverLocations array = []

@description('Make every region writable (multi-region writes). Only with Provisioned and failoverLocations.')
param enableMultipleWriteLocations bool = false

@description('Continuous backup tier: Continuous7Days (free) or Continuous30Days.')
@allowed([
  'Continuous7Days'
  'Continuous30Days'
])
param backupTier string = 'Continuous7Days'

@description('Zone-redundant write region (not available in every region).')
param zoneRedundant bool = false

@description('Object (principal) ID of the managed identity that gets the Built-in Data Contributor role.')
param dataAccessPrincipalId string

@description('Resource ID of the Log Analytics workspace that receives diagnostics.')
param workspaceId string

@description('When true, public network access is disabled and a private endpoint is created.')
param enablePrivateEndpoint bool = false

@description('Subnet for the private endpoint (used only when enablePrivateEndpoint is true).')
param privateEndpointSubnetId string = ''

@description('Resource ID of the privatelink.documents.azure.com zone (used only when enablePrivateEndpoint is true).')
param privateDnsZoneId string = ''

var serverless = capacityMode == 'Serverless'
var primaryLocation = [
  {
    locationName: location
    failoverPriority: 0
    isZoneRedundant: zoneRedundant
  }
]
var secondaryLocations = [for (region, i) in failoverLocations: {
  locationName: region
  failoverPriority: i + 1
  isZoneRedundant: false
}]
// Built-in "Cosmos DB Built-in Data Contributor": read/write items, no control-plane rights.
var dataContributorRoleId = '00000000-0000-0000-0000-000000000002'

resource account 'Microsoft.DocumentDB/databaseAccounts@2025-04-15' = {
  //checkov:skip=CKV_AZURE_101: publicNetworkAccess is Disabled exactly when enablePrivateEndpoints is true (prod); dev keeps it Enabled because Container Apps has no static egress IP. disableLocalAuth makes every request need an Entra token and a data role.
  //checkov:skip=CKV_AZURE_99: IP/VNet filters are replaced by the private endpoint when enablePrivateEndpoints is true; without it an IP filter cannot name Container Apps' egress, and access is Entra-only (disableLocalAuth).
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: enablePrivateEndpoint ? 'Disabled' : 'Enabled'
    consistencyPolicy: {
      defaultConsistencyLevel: consistencyLevel
    }
    locations: serverless ? primaryLocation : concat(primaryLocation, secondaryLocations)
    enableAutomaticFailover: !serverless
    enableMultipleWriteLocations: serverless ? false : enableMultipleWriteLocations
    capabilities: serverless ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: backupTier
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2025-04-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-04-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: {
        paths: [
          '/pk'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: -1
      // Same policy as CosmosWarmMemory.setup(): the value payload `v` (base64) is never queried, so
      // indexing it would only cost RUs on every write.
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/v/?'
          }
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
    options: serverless ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

resource dataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2025-04-15' = {
  parent: account
  name: guid(account.id, databaseName, dataAccessPrincipalId, dataContributorRoleId)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributorRoleId}'
    principalId: dataAccessPrincipalId
    scope: '${account.id}/dbs/${databaseName}'
  }
  dependsOn: [
    database
  ]
}

// Resource-specific tables: CDBDataPlaneRequests (status codes, RU per request), CDBPartitionKeyRUConsumption
// and CDBPartitionKeyStatistics (hot partitions), CDBControlPlaneRequests.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Requests'
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
    serviceId: account.id
    groupId: 'Sql'
    privateDnsZoneId: privateDnsZoneId
  }
}

@description('Resource ID of the account (scope of the 429 alert).')
output id string = account.id

@description('Document endpoint of the account.')
output endpoint string = account.properties.documentEndpoint

@description('Name of the SQL database.')
output databaseName string = database.name

@description('Name of the container.')
output containerName string = container.name
