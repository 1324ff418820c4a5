package callctl

import (
	"encoding/json"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// callPath is the resourceUrl of a call; legacyCallPath its legacy
// "resource" twin that real Graph traffic still carries.
func callPath(id string) string       { return "/communications/calls/" + id }
func legacyCallPath(id string) string { return "/app/calls/" + id }

// envelope wraps one notification in a commsNotifications body.
func envelope(change graph.ChangeType, resource, resourceURL string, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(graph.CommsNotifications{
		ODataType: graph.TypeCommsNotifications,
		Value: []graph.CommsNotification{{
			ODataType:    graph.TypeCommsNotification,
			ChangeType:   change,
			Resource:     resource,
			ResourceURL:  resourceURL,
			ResourceData: raw,
		}},
	})
}

// callChange is the partial call Graph sends on a state change.
func callChange(c *graph.Call) *graph.Call {
	return &graph.Call{
		ODataType:   graph.TypeCall,
		ODataID:     callPath(c.ID),
		ID:          c.ID,
		State:       c.State,
		Direction:   c.Direction,
		ChatInfo:    c.ChatInfo,
		MeetingInfo: c.MeetingInfo,
		MediaState:  c.MediaState,
		ResultInfo:  c.ResultInfo,
		CallChainID: c.CallChainID,
	}
}

// fullCall is the call as an incoming or redirected notification carries it.
func fullCall(c *graph.Call) *graph.Call {
	cp := *c
	cp.ODataType = graph.TypeCall
	cp.ODataID = callPath(c.ID)
	cp.ODataContext = ""
	return &cp
}

func operationPath(callID, opID string) string {
	return callPath(callID) + "/operations/" + opID
}

func legacyOperationPath(callID, opID string) string {
	return legacyCallPath(callID) + "/operations/" + opID
}
