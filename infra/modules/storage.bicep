// Cold tier: Azure Blob Storage.
// - Entra ID only: allowSharedKeyAccess false (no account keys, no SAS signed with them), HTTPS only,
//   TLS 1.2 minimum, no anonymous blob access.
// - Container `tiermem` (private). The app identity gets Storage Blob Data Contributor on that container.
// - Lifecycle rule on the container: Cool after N days, Cold after M days, delete after D days. Blob has no
//   TTL; tiermem reads check the expiry it stores, `tiermem sweep` deletes expired blobs, and this rule bounds
//   the age of everything else.
// - Restore story: blob soft delete + versioning (+ change feed and point-in-time restore when enabled),
//   container soft delete.

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the account.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Replication SKU. The cold tier can hold the only copy of archived values (tier=COLD), so the default is geo-zone-redundant; dev may choose Standard_LRS.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GZRS'

@description('Name of the blob container for the cold tier.')
param containerName string = 'tiermem'

@description('Days after the last write before a blob moves to the Cool tier.')
@minValue(1)
param coolAfterDays int = 30

@description('Days after the last write before a blob moves to the Cold tier (greater than coolAfterDays).')
@minValue(1)
param coldAfterDays int = 90

@description('Days after the last write before a blob is deleted (the age bound of the cold tier; greater than coldAfterDays).')
@minValue(1)
param deleteAfterDays int = 365

@description('Days that deleted blobs and containers stay recoverable (soft delete).')
@minValue(1)
@maxValue(365)
param softDeleteRetentionDays int = 14

@description('Days that previous blob versions are kept before the lifecycle rule deletes them.')
@minValue(1)
param versionRetentionDays int = 30

@description('Enable point-in-time restore of block blobs (needs change feed; must be shorter than softDeleteRetentionDays).')
param enablePointInTimeRestore bool = true

@description('Days back that point-in-time restore can reach (less than softDeleteRetentionDays).')
@minValue(1)
param pointInTimeRestoreDays int = 7

@description('Object (principal) ID of the managed identity that gets Storage Blob Data Contributor on the container.')
param dataAccessPrincipalId string

@description('Object ID of the sweep job identity: Storage Blob Data Contributor on the cold-tier container only; empty for none.')
param sweepPrincipalId string = ''

@description('Resource ID of the Log Analytics workspace that receives diagnostics.')
param workspaceId string

@description('When true, public network access is disabled and a private endpoint is created.')
param enablePrivateEndpoint bool = false

@description('Subnet for the private endpoint (used only when enablePrivateEndpoint is true).')
param privateEndpointSubnetId string = ''

@description('Resource ID of the privatelink.blob zone (used only when enablePrivateEndpoint is true).')
param privateDnsZoneId string = ''

// Built-in role "Storage Blob Data Contributor".
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  //checkov:skip=CKV_AZURE_35: network exposure is the enablePrivateEndpoints switch: true (prod) sets defaultAction Deny and publicNetworkAccess Disabled; false keeps the endpoint reachable from Container Apps (no static egress IP). Shared keys are off, so every request still needs an Entra token and a data role.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSkuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: enablePrivateEndpoint ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: enablePrivateEndpoint ? 'Deny' : 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    changeFeed: {
      enabled: enablePointInTimeRestore
    }
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    restorePolicy: {
      enabled: enablePointInTimeRestore
      days: pointInTimeRestoreDays
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-01-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'tiermem-age-bound'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${containerName}/'
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: coolAfterDays
                }
                tierToCold: {
                  daysAfterModificationGreaterThan: coldAfterDays
                }
                delete: {
                  daysAfterModificationGreaterThan: deleteAfterDays
                }
              }
              version: {
                delete: {
                  daysAfterCreationGreaterThan: versionRetentionDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: versionRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    container
  ]
}

resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, dataAccessPrincipalId, blobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: dataAccessPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource sweepDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(sweepPrincipalId)) {
  name: guid(container.id, sweepPrincipalId, blobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: sweepPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

// StorageBlobLogs: every blob request with its StatusCode (503 = ServerBusy), AuthenticationType and caller.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

module privateEndpoint 'private-endpoint.bicep' = if (enablePrivateEndpoint) {
  name: '${name}-blob-pe'
  params: {
    name: '${name}-blob-pe'
    location: location
    tags: tags
    subnetId: privateEndpointSubnetId
    serviceId: account.id
    groupId: 'blob'
    privateDnsZoneId: privateDnsZoneId
  }
}

@description('Resource ID of the storage account.')
output id string = account.id

@description('Resource ID of the blob service (scope of the throttling alert).')
output blobServiceId string = blobService.id

@description('Blob endpoint of the account, e.g. https://<account>.blob.core.windows.net/.')
output blobEndpoint string = account.properties.primaryEndpoints.blob

@description('Name of the cold tier container.')
output containerName string = container.name
