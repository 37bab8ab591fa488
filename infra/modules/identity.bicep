// User-assigned managed identity shared by the Container App (and any other compute that runs tiermem).
// Every data-plane role in this deployment is granted to this one identity; the app selects it with
// AZURE_CLIENT_ID so DefaultAzureCredential / ManagedIdentityCredential never guesses.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region for the identity.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

@description('Resource ID of the identity (used to attach it to the Container App).')
output id string = identity.id

@description('Client (application) ID of the identity: the value of AZURE_CLIENT_ID.')
output clientId string = identity.properties.clientId

@description('Object (principal) ID of the identity: the subject of every role assignment.')
output principalId string = identity.properties.principalId

@description('Name of the identity.')
output name string = identity.name
