// One private endpoint plus its DNS zone group, so the service's FQDN resolves to the private IP inside the VNet.

@description('Name of the private endpoint.')
param name string

@description('Azure region for the private endpoint (same region as the VNet).')
param location string

@description('Tags applied to the private endpoint.')
param tags object = {}

@description('Resource ID of the subnet that receives the private endpoint NIC.')
param subnetId string

@description('Resource ID of the service the endpoint connects to.')
param serviceId string

@description('Private link sub-resource (group ID): redisEnterprise, Sql, blob or vault.')
@allowed([
  'redisEnterprise'
  'Sql'
  'blob'
  'vault'
])
param groupId string

@description('Resource ID of the private DNS zone that holds the service A record.')
param privateDnsZoneId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: serviceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource dnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

@description('Resource ID of the private endpoint.')
output id string = endpoint.id
