// Virtual network, subnets and private DNS zones used when enablePrivateEndpoints is true.
// The Container Apps environment joins appSubnet (so the app resolves and reaches the private endpoints);
// every private endpoint lands in privateEndpointSubnet; each service's privatelink zone is linked to the VNet.

@description('Name of the virtual network.')
param vnetName string

@description('Azure region for the virtual network.')
param location string

@description('Tags applied to every resource in this module.')
param tags object = {}

@description('Address space of the virtual network.')
param addressPrefix string = '10.60.0.0/16'

@description('Subnet for the Container Apps environment (workload-profiles environments need at least a /27).')
param appSubnetPrefix string = '10.60.0.0/23'

@description('Subnet that holds the private endpoints.')
param privateEndpointSubnetPrefix string = '10.60.2.0/24'

// Private DNS zone names are fixed by each service; blob's follows the cloud's storage suffix.
var zoneNames = {
  redis: 'privatelink.redis.azure.net'
  cosmos: 'privatelink.documents.azure.com'
  blob: 'privatelink.blob.${environment().suffixes.storage}'
  vault: 'privatelink.vaultcore.azure.net'
}

resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${vnetName}-apps-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource peNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${vnetName}-pe-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-apps'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'containerapps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'snet-private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: peNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource redisZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneNames.redis
  location: 'global'
  tags: tags
}

resource cosmosZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneNames.cosmos
  location: 'global'
  tags: tags
}

resource blobZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneNames.blob
  location: 'global'
  tags: tags
}

resource vaultZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: zoneNames.vault
  location: 'global'
  tags: tags
}

resource redisZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: redisZone
  name: '${vnetName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

resource cosmosZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: cosmosZone
  name: '${vnetName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

resource blobZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: blobZone
  name: '${vnetName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

resource vaultZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: vaultZone
  name: '${vnetName}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

@description('Resource ID of the subnet the Container Apps environment joins.')
output appSubnetId string = '${vnet.id}/subnets/snet-apps'

@description('Resource ID of the subnet that holds the private endpoints.')
output privateEndpointSubnetId string = '${vnet.id}/subnets/snet-private-endpoints'

@description('Resource ID of the privatelink.redis.azure.net zone (Azure Managed Redis).')
output redisZoneId string = redisZone.id

@description('Resource ID of the privatelink.documents.azure.com zone (Cosmos DB for NoSQL).')
output cosmosZoneId string = cosmosZone.id

@description('Resource ID of the privatelink.blob zone (Blob Storage).')
output blobZoneId string = blobZone.id

@description('Resource ID of the privatelink.vaultcore.azure.net zone (Key Vault).')
output vaultZoneId string = vaultZone.id
