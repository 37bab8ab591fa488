// Key Vault for the few secrets that remain (for example a Redis password, only where Entra ID auth for
// Redis is impossible). Access is Azure RBAC only (no access policies); purge protection and soft delete
// make a deleted secret recoverable. The app identity gets Key Vault Secrets User (read secret values) on
// this vault only. This template creates no secret: operators set them (runbooks/rotate-secrets.md).

@description('Name of the Key Vault (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the vault.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Days a deleted vault or secret stays recoverable (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Object (principal) ID of the managed identity that gets Key Vault Secrets User.')
param secretsReaderPrincipalId string

@description('Resource ID of the Log Analytics workspace that receives diagnostics.')
param workspaceId string

@description('When true, public network access is disabled and a private endpoint is created.')
param enablePrivateEndpoint bool = false

@description('Subnet for the private endpoint (used only when enablePrivateEndpoint is true).')
param privateEndpointSubnetId string = ''

@description('Resource ID of the privatelink.vaultcore.azure.net zone (used only when enablePrivateEndpoint is true).')
param privateDnsZoneId string = ''

// Built-in role "Key Vault Secrets User": read secret contents, nothing else.
var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  //checkov:skip=CKV_AZURE_109: the firewall default action is Deny exactly when enablePrivateEndpoints is true (prod); dev keeps Allow so operators can set the few secrets. RBAC-only access still requires an Entra token and a role.
  //checkov:skip=CKV_AZURE_189: publicNetworkAccess is Disabled exactly when enablePrivateEndpoints is true; checkov 3.3.30 cannot evaluate the conditional and raises instead of reporting (see tests/infra/test_checkov.py).
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enablePurgeProtection: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: enablePrivateEndpoint ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: enablePrivateEndpoint ? 'Deny' : 'Allow'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, secretsReaderPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: secretsReaderPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// AZKVAuditLogs: every secret read/write with caller identity and result (403s show up here).
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
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
        category: 'AllMetrics'
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
    serviceId: vault.id
    groupId: 'vault'
    privateDnsZoneId: privateDnsZoneId
  }
}

@description('Resource ID of the vault.')
output id string = vault.id

@description('Vault URI, e.g. https://<name>.vault.azure.net/.')
output uri string = vault.properties.vaultUri
